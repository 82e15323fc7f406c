//! jing-models
