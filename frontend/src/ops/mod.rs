//! The tensor ops, as methods on [`Tensor`](crate::Tensor) grouped by family, plus the
//! few free functions (`select`, `concat`).

mod activation;
mod elementwise;
mod index;
mod linalg;
mod movement;
mod overload;
mod random;
mod reduce;

pub use elementwise::select;
pub use linalg::Pair;
pub use movement::{NewShape, concat};
