//! The article's servers ("Exploring Distributed Elixir"), hosted in Rust: a key-value store
//! and a publish-subscribe server that monitors its subscribers.

pub mod kv;
pub mod pubsub;

pub use kv::Kv;
pub use pubsub::PubSub;
