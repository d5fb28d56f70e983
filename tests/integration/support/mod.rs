pub mod edgehook;
pub mod origin;

pub use edgehook::*;
pub use origin::*;
