//! The built-in commands, thin layers over the fleet API.

pub mod discover;
pub mod inventory;
pub mod req;
pub mod sim;
