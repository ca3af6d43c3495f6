//! The exported C functions, one module per header section.

pub mod deferred;
pub mod heap;
pub mod immortal;
pub mod immortalize;
pub mod registry;
pub mod target;
pub mod unique;
