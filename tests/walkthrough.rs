//! "Exploring Distributed Elixir", replayed with the Rust node as `zed`: Elixir nodes `foo`,
//! `bar` and `mini` started the way the article starts them, and every step of the article
//! checked from their side, on each harness OTP version.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use erlnode::node::NodeConfig;
use erlnode::term::{ExportFun, Pid};
use erlnode::{Atom, Dest, Process, Term, services};

const T: Duration = Duration::from_secs(30);

/// Log lines the Rust node writes (tracing output), captured for the `DOWN` line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn capture_logs() -> Captured {
    static CAPTURED: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let c = Captured::default();
            let writer = c.clone();
            tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .init();
            c
        })
        .clone()
}

async fn eval(n: &BeamNode, expr: &str) -> String {
    n.eval_timeout_async(expr, T).await.unwrap_or_else(|e| panic!("{} on {}: {e:?}", expr, n.name()))
}

async fn lists(n: &BeamNode, node: &str) -> bool {
    n.eval_async("Node.list()").await.unwrap_or_default().contains(&elixir_atom(node))
}

#[test]
fn the_article_with_zed_as_erlnode() {
    let logs = capture_logs();
    for_each_otp_async(|otp| {
        let logs = logs.clone();
        async move {
            let epmd = Epmd::start(&otp);
            let foo = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("foo"));
            let bar = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("bar"));

            // iex(foo)> Agent.start(fn -> 42 end, name: {:global, :agent1})
            assert!(eval(&foo, "Agent.start(fn -> 42 end, name: {:global, :agent1})").await.starts_with("{:ok, #PID<"));
            assert_eq!(eval(&foo, ":global.registered_names()").await, "[:agent1]");
            // iex(bar)> Node.connect :foo@host
            assert_eq!(eval(&bar, &format!("Node.connect({})", elixir_atom(foo.name()))).await, "true");
            assert_eq!(eval(&bar, "Node.list()").await, format!("[{}]", elixir_atom(foo.name())));
            // iex(bar)> :global.registered_names   (once bar's own sync with foo is done)
            assert!(wait_until_async(T, async || eval(&bar, ":global.registered_names()").await == "[:agent1]").await);
            assert_eq!(eval(&bar, "Agent.get({:global, :agent1}, fn x -> x end)").await, "42");

            // zed is erlnode: it connects to foo only and publishes kv1 and ps1
            let zed = erlnode::services::start_node(
                NodeConfig::new(unique_name("zed"), DEFAULT_COOKIE).epmd_port(epmd.port()),
            )
            .await
            .expect("zed starts");
            let z = zed.name().as_str().to_string();
            assert!(zed.connect(&Atom::new(foo.name())).await);
            let servers = erlnode::apps::start_servers(&zed, &["kv1"], &["ps1"]).await.expect("servers");
            assert_eq!(servers.len(), 2);

            // both foo and bar list zed; zed lists both
            for n in [&foo, &bar] {
                assert!(wait_until_async(T, async || lists(n, &z).await).await, "{} does not list zed", n.name());
            }
            let mut want = vec![Atom::new(foo.name()), Atom::new(bar.name())];
            want.sort();
            assert!(wait_until_async(T, async || zed.nodes() == want).await, "zed lists {:?}", zed.nodes());

            // :global.registered_names() everywhere
            for n in [&foo, &bar] {
                assert!(
                    wait_until_async(T, async || eval(n, ":global.registered_names() |> Enum.sort()").await
                        == "[:agent1, :kv1, :ps1]")
                    .await,
                    "names on {}",
                    n.name()
                );
            }
            let names: Vec<String> = services::registered_names(&zed).iter().map(|t| t.to_string()).collect();
            assert_eq!(names, ["agent1", "kv1", "ps1"]);

            // Rust reads the Agent with an export fun, and updates it with {Kernel, :+, [1]}
            let identity = Term::from(ExportFun {
                module: Atom::new("Elixir.Function"),
                function: Atom::new("identity"),
                arity: 1,
            });
            let agent = Dest::Global(Term::atom("agent1"));
            let got = zed.call(agent.clone(), Term::Tuple(vec![Term::atom("get"), identity]), Some(T)).await;
            assert_eq!(got, Ok(Term::Int(42)));
            let add_one =
                Term::Tuple(vec![Term::atom("Elixir.Kernel"), Term::atom("+"), Term::List(vec![Term::Int(1)])]);
            let upd = zed.call(agent, Term::Tuple(vec![Term::atom("update"), add_one]), Some(T)).await;
            assert_eq!(upd, Ok(Term::atom("ok")));
            assert_eq!(eval(&foo, "Agent.get({:global, :agent1}, fn x -> x end)").await, "43");

            // iex(bar)> GenServer.call({:global, :kv1}, {:set, :foo, 123}); foo reads it
            assert_eq!(eval(&bar, "GenServer.call({:global, :kv1}, {:set, :foo, 123})").await, "true");
            assert_eq!(eval(&foo, "GenServer.call({:global, :kv1}, {:get, :foo})").await, "123");

            // a fourth node, mini, connects to foo and reads 123
            let mini = BeamNode::start(&otp, &epmd, NodeOpts::elixir().prefix("mini"));
            assert_eq!(eval(&mini, &format!("Node.connect({})", elixir_atom(foo.name()))).await, "true");
            assert!(wait_until_async(T, async || lists(&mini, &z).await).await, "mini does not list zed");
            assert!(
                wait_until_async(T, async || mini
                    .eval_async("GenServer.call({:global, :kv1}, {:get, :foo})")
                    .await
                    .as_deref()
                    == Ok("123"))
                .await
            );

            // foo, bar and mini subscribe to :topic1 on ps1, and a Rust process does too
            for n in [&foo, &bar, &mini] {
                assert_eq!(eval(n, "GenServer.call({:global, :ps1}, {:subscribe, :topic1})").await, "true");
            }
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Term>();
            let subscriber: Pid = zed.spawn(move |mut p: Process| async move {
                let ps1 = Dest::Global(Term::atom("ps1"));
                let sub = Term::Tuple(vec![Term::atom("subscribe"), Term::atom("topic1")]);
                let r = erlnode::gen_server::call(&mut p, ps1.clone(), sub, Some(T)).await;
                let _ = tx.send(r.unwrap_or(Term::atom("failed")));
                let _go = p.receive().await;
                let yo = Term::Tuple(vec![Term::atom("msg"), Term::atom("yo")]);
                let b = Term::Tuple(vec![Term::atom("broadcast"), Term::atom("topic1"), yo]);
                let r = erlnode::gen_server::call(&mut p, ps1, b, Some(T)).await;
                let _ = tx.send(r.unwrap_or(Term::atom("failed")));
                // the broadcaster does not get its own message
                let own = p.receive_timeout(Duration::from_millis(500)).await;
                let _ = tx.send(own.unwrap_or(Term::atom("nothing")));
                // stay subscribed until the end
                let _stop = p.receive().await;
                erlnode::node::normal()
            });
            assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("true"));
            let subs = eval(&bar, "GenServer.call({:global, :ps1}, {:subscribers, :topic1}) |> length()").await;
            assert_eq!(subs, "4");
            zed.send(subscriber, Term::atom("go"));
            assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("true"));
            for n in [&foo, &bar, &mini] {
                assert_eq!(
                    eval(n, "receive do m -> m after 5000 -> :timeout end").await,
                    "{:msg, :yo}",
                    "on {}",
                    n.name()
                );
            }
            assert_eq!(tokio::time::timeout(T, rx.recv()).await.unwrap().unwrap(), Term::atom("nothing"));

            // mini dies: ps1 drops its subscriber with :noconnection, and zed no longer lists mini
            let mini_name = mini.name().to_string();
            mini.kill();
            assert!(
                wait_until_async(T, async || {
                    let text = logs.text();
                    text.lines().any(|l| {
                        l.contains(&format!("DOWN #PID<{mini_name}.")) && l.contains("for reason :noconnection")
                    })
                })
                .await,
                "no DOWN line for mini"
            );
            assert_eq!(eval(&bar, "GenServer.call({:global, :ps1}, {:subscribers, :topic1}) |> length()").await, "3");
            assert!(wait_until_async(T, async || !zed.nodes().contains(&Atom::new(&mini_name))).await);
            zed.shutdown();
        }
    });
}
