//! kiln's Rust DSL: write a model as tensor expressions, get a [`kiln_ir::Graph`].
//!
//! ```
//! use kiln_frontend::prelude::*;
//!
//! let g = GraphBuilder::new("mlp");
//! let mut rng = Rng::seed(0);
//! let x = g.input("x", DType::F32, [64, 784]);
//! let labels = g.input("labels", DType::I32, [64]);
//! let fc1 = nn::Linear::new(&g, "fc1", 784, 128, &mut rng);
//! let fc2 = nn::Linear::new(&g, "fc2", 128, 10, &mut rng);
//! let logits = fc2.forward(&fc1.forward(&x).relu());
//! let loss = loss::cross_entropy(&logits, &labels);
//! let model = g.build(&[("loss", &loss), ("logits", &logits)]).unwrap();
//! assert_eq!(model.params.len(), 4);
//! ```
//!
//! - [`GraphBuilder`] declares inputs and parameters and builds the [`Model`].
//! - [`Tensor`] is a symbolic handle with the ops as methods and operators;
//!   elementwise ops broadcast NumPy-style, axes are `isize` (negative from the end).
//! - Mistakes never panic: they are recorded with the caller's source location and
//!   returned by [`GraphBuilder::build`] as a [`BuildError`] (see [`error`]).
//! - [`nn`] has layers and the [`Module`](nn::Module) trait, [`loss`] the losses,
//!   [`init`] the initializers, [`Rng`] a seeded generator.

#![warn(missing_docs)]

/// Builder methods that each set one field and return `self`:
/// `setters! { /// Sets ε. \n eps(eps: f32) => eps; }`.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident($arg:ident: $ty:ty) => $field:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, $arg: $ty) -> Self {
            self.$field = $arg;
            self
        }
    )*};
}

mod builder;
mod ctx;
pub mod error;
pub mod init;
pub mod loss;
mod model;
pub mod nn;
mod ops;
pub mod optim;
mod rng;
pub mod scan;
mod shapes;
mod tensor;

pub use builder::{GraphBuilder, OutputSpec};
pub use error::{BuildError, DslError, ErrorKind};
pub use init::{Init, fans};
pub use model::{ArgError, Model, ParamStore};
pub use ops::{NewShape, Pair, concat, select};
pub use rng::Rng;
pub use shapes::{broadcast_shapes, normalize_axes, normalize_axis};
pub use tensor::{Operand, Tensor};

/// Everything a model definition needs: `use kiln_frontend::prelude::*;`.
pub mod prelude {
    pub use crate::nn::{self, Module};
    pub use crate::optim::{AdaGrad, Adadelta, Adam, Optimizer, RmsProp, Sgd};
    pub use crate::{
        BuildError, DslError, GraphBuilder, Init, Model, ParamStore, Rng, Tensor, concat, loss,
        optim, select,
    };
    pub use kiln_ir::{DType, HostTensor, Shape};
}
