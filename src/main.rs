//! The `erlnode` command: a node serving the article's KV and PubSub, and one-shot tools.

fn main() {
    println!("erlnode {}", env!("CARGO_PKG_VERSION"));
}
