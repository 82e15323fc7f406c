//! jing-formats
