# ErlnodePeer: what the ecosystem interop tests (tests/phoenix_pubsub_interop.rs,
# tests/libcluster_interop.rs) run on their Elixir nodes, loaded with Code.compile_file/1. Each
# function does what a Phoenix application or a person in iex would: start the libraries as a
# supervision tree does, subscribe processes, broadcast.
defmodule ErlnodePeer do
  @doc "Starts `{Phoenix.PubSub, [name: name] ++ opts}` under a supervisor of its own (unlinked)."
  def start_pubsub(name, opts \\ []) do
    {:ok, _} = Application.ensure_all_started(:phoenix_pubsub)
    {:ok, sup} = Supervisor.start_link([{Phoenix.PubSub, [name: name] ++ opts}], strategy: :one_for_one)
    Process.unlink(sup)
    :ok
  end

  @doc "Starts libcluster with `topologies` as an application's supervision tree does."
  def start_cluster(topologies) do
    {:ok, _} = Application.ensure_all_started(:libcluster)
    {:ok, sup} = Cluster.Supervisor.start_link([topologies, [name: ErlnodePeer.ClusterSupervisor]])
    Process.unlink(sup)
    :ok
  end

  @doc "A process subscribed to `topics` that keeps every message it receives."
  def collector(pubsub, topics) do
    parent = self()

    pid =
      spawn(fn ->
        for t <- List.wrap(topics), do: :ok = Phoenix.PubSub.subscribe(pubsub, t)
        send(parent, {:subscribed, self()})
        keep([])
      end)

    receive do
      {:subscribed, ^pid} -> pid
    end
  end

  defp keep(acc) do
    receive do
      {:"$erlnode_get", from} ->
        send(from, {:"$erlnode_got", Enum.reverse(acc)})
        keep(acc)

      m ->
        keep([m | acc])
    end
  end

  @doc "What `collector` has received so far, oldest first."
  def got(pid) do
    send(pid, {:"$erlnode_get", self()})

    receive do
      {:"$erlnode_got", l} -> l
    after
      5000 -> :timeout
    end
  end

  @doc "Waits until `collector` has received `n` messages (or `timeout` ms passed); returns them."
  def wait_got(pid, n, timeout \\ 20000) do
    deadline = System.monotonic_time(:millisecond) + timeout
    wait_got(pid, n, deadline, nil)
  end

  defp wait_got(pid, n, deadline, _) do
    l = got(pid)

    cond do
      is_list(l) and length(l) >= n -> l
      System.monotonic_time(:millisecond) > deadline -> {:timeout, l}
      true -> Process.sleep(20) && wait_got(pid, n, deadline, nil)
    end
  end

  @doc """
  Broadcasts `{:msg, s, i}` for i in 1..per_sender from `senders` processes (each its own pid,
  so every pool group is used), then `{:done, s}` from each; waits for the senders to finish.
  """
  def broadcast_many(pubsub, topic, senders, per_sender) do
    parent = self()

    for s <- 1..senders do
      spawn(fn ->
        for i <- 1..per_sender, do: :ok = Phoenix.PubSub.broadcast(pubsub, topic, {:msg, s, i})
        :ok = Phoenix.PubSub.broadcast(pubsub, topic, {:done, s})
        send(parent, {:sent, s})
      end)
    end

    for s <- 1..senders, do: receive(do: ({:sent, ^s} -> :ok))
    :ok
  end

  @doc "`true` if `node` has a member in each of the pool groups 1..pool of `pubsub`."
  def serves?(pubsub, pool, node) do
    adapter = Module.concat(pubsub, "Adapter")

    Enum.all?(1..pool, fn i ->
      group = if i == 1, do: adapter, else: :"#{adapter}_#{i}"
      Enum.any?(:pg.get_members(Phoenix.PubSub, group), &(node(&1) == node))
    end)
  end
end

defmodule ErlnodePeer.Dispatcher do
  @moduledoc "A custom Phoenix.PubSub dispatcher: delivers `{:custom, message}`."
  def dispatch(entries, from, message) do
    for {pid, _} <- entries, pid != from, do: send(pid, {:custom, message})
    :ok
  end
end

defmodule ErlnodePeer.Cluster do
  @moduledoc "libcluster topologies as an application starts them, with their dials recorded."

  @doc "Starts a Gossip topology with `config`; `dial` false gives it a `connect` MFA that dials nobody."
  def gossip(config, dial \\ true) do
    connect = if dial, do: {__MODULE__, :record_connect, []}, else: {__MODULE__, :no_connect, []}
    start(gossip: [strategy: Cluster.Strategy.Gossip, config: config, connect: connect])
  end

  @doc "Starts `topologies` (libcluster's `:topologies` config) under Cluster.Supervisor."
  def start(topologies) do
    if :ets.whereis(:erlnode_dials) == :undefined do
      parent = self()

      spawn(fn ->
        :ets.new(:erlnode_dials, [:named_table, :public, :bag])
        send(parent, :table)
        Process.sleep(:infinity)
      end)

      receive do: (:table -> :ok)
    end

    ErlnodePeer.start_cluster(topologies)
  end

  @doc "The connect MFA: connects as libcluster's default does, then records the dial."
  def record_connect(node) do
    connected = :net_kernel.connect_node(node)
    :ets.insert(:erlnode_dials, {node})
    connected
  end

  @doc "A connect MFA that dials nobody (and says it did)."
  def no_connect(_node), do: true

  @doc "The nodes this node's libcluster dialled."
  def dialled, do: :ets.tab2list(:erlnode_dials) |> Enum.map(&elem(&1, 0)) |> Enum.uniq()
end
