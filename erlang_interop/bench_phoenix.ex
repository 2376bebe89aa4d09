# ErlnodeBenchPhx: the BEAM side of `scripts/bench phoenix` (src/bin/erlnode-bench/phoenix.rs).
# Runs on Elixir nodes that have phoenix_pubsub on their code path; every node runs
# `{Phoenix.PubSub, name: BenchPhx.PubSub}` as a Phoenix app does.
defmodule ErlnodeBenchPhx do
  @pubsub BenchPhx.PubSub

  @doc "Starts the PubSub (unlinked) and a delivery counter."
  def start do
    {:ok, _} = Application.ensure_all_started(:phoenix_pubsub)
    {:ok, sup} = Supervisor.start_link([{Phoenix.PubSub, name: @pubsub}], strategy: :one_for_one)
    Process.unlink(sup)
    :persistent_term.put({__MODULE__, :count}, :atomics.new(1, signed: false))
    :ok
  end

  @doc "Starts `n` subscribers to `topic`, each counting what it gets."
  def subscribe(topic, n) do
    ref = :persistent_term.get({__MODULE__, :count})
    parent = self()

    for _ <- 1..n do
      spawn(fn ->
        :ok = Phoenix.PubSub.subscribe(@pubsub, topic)
        send(parent, :subscribed)
        count(ref)
      end)
    end

    for _ <- 1..n, do: receive(do: (:subscribed -> :ok))
    :ok
  end

  defp count(ref) do
    receive do
      _ ->
        :atomics.add(ref, 1, 1)
        count(ref)
    end
  end

  @doc "Deliveries counted on this node so far."
  def count, do: :atomics.get(:persistent_term.get({__MODULE__, :count}), 1)

  @doc "Broadcasts `{:msg, i}` on `topic` up to `n` times or for `dur_ms`: -> {sent, elapsed_us}."
  def broadcast_loop(topic, n, dur_ms) do
    t0 = System.monotonic_time(:microsecond)
    deadline = t0 + dur_ms * 1000
    sent = loop(topic, 0, n, deadline)
    {sent, System.monotonic_time(:microsecond) - t0}
  end

  defp loop(_topic, i, n, _deadline) when i >= n, do: i

  defp loop(topic, i, n, deadline) do
    if rem(i, 64) == 0 and System.monotonic_time(:microsecond) >= deadline do
      i
    else
      Phoenix.PubSub.broadcast(@pubsub, topic, {:msg, i})
      loop(topic, i + 1, n, deadline)
    end
  end

  @doc """
  One timed pass: `start` sends (a fun returning {sent, _}), then waits until `counters` (funs
  returning a node's delivery count) have grown by `sent * per_broadcast`. ->
  {sent, send_us, delivered, all_delivered_us}
  """
  def measure(start, counters, per_broadcast, timeout_ms) do
    before = Enum.sum(Enum.map(counters, & &1.()))
    t0 = System.monotonic_time(:microsecond)
    {sent, send_us} = start.()
    want = before + sent * per_broadcast
    deadline = t0 + timeout_ms * 1000
    got = wait(counters, want, deadline)
    {sent, send_us, got - before, System.monotonic_time(:microsecond) - t0}
  end

  defp wait(counters, want, deadline) do
    got = Enum.sum(Enum.map(counters, & &1.()))

    cond do
      got >= want -> got
      System.monotonic_time(:microsecond) > deadline -> got
      true -> Process.sleep(1) && wait(counters, want, deadline)
    end
  end
end
