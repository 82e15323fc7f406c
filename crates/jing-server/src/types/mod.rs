//! The wire types: requests read field by field into checked structs (so every error names
//! its field), and responses written from structs in OpenAI's key order.

pub mod chat;
pub mod completion;
pub mod fields;
pub mod params;
pub mod response;
