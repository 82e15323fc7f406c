//! jing-engine
