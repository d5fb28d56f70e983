pub mod browser;
pub mod edgehook;
pub mod etcd;
pub mod gate;
pub mod name_server;
pub mod origin;

pub use edgehook::*;
pub use etcd::*;
pub use gate::*;
pub use name_server::*;
pub use origin::*;
