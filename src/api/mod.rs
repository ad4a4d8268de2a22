//! The request face: the operations' requests and responses in their wire shapes, the field rules
//! of the model, the JSON wire form, page tokens, and the API's writes as one type.
//!
//! Invariant: a request that leaves this layer is valid by every field rule of the model
//! (`shared/finspace/api-constraints.json`); a bad one is refused here naming its member and rule,
//! before it can reach the write path.

pub mod page;
pub mod request;
pub mod validate;
pub mod wire;
pub mod write_op;
