//! jing-cpu
