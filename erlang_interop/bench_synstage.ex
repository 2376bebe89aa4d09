# ErlnodeBenchStage and ErlnodeBenchSyn: the BEAM side of `scripts/bench genstage syn`
# (src/bin/erlnode-bench/synstage.rs). Runs on Elixir nodes with gen_stage 1.3.2 and syn 3.4.1
# (../shared/peers) on their code path, loaded with Code.compile_file/1.

defmodule ErlnodeBenchStage.Counter do
  @moduledoc "The Counter of GenStage's documentation: emits 0, 1, 2, ... on demand."
  use GenStage
  def init(n), do: {:producer, n}
  def handle_demand(d, n), do: {:noreply, Enum.to_list(n..(n + d - 1)), n + d}
end

defmodule ErlnodeBenchStage.Consumer do
  @moduledoc "Counts events; tells `parent` once `n` have arrived."
  use GenStage
  def init({parent, n}), do: {:consumer, {parent, n, 0}}

  def handle_events(events, _from, {parent, n, got}) do
    now = got + length(events)
    if got < n and now >= n, do: send(parent, {:stage_done, self(), now})
    {:noreply, [], {parent, n, now}}
  end
end

defmodule ErlnodeBenchStage do
  @doc "Starts (unlinked) a Counter producer registered as `name`."
  def counter(name) do
    {:ok, _} = Application.ensure_all_started(:gen_stage)
    {:ok, pid} = GenStage.start(ErlnodeBenchStage.Counter, 0, name: name)
    pid
  end

  @doc """
  One timed pass: a fresh consumer subscribes to `producer` with `max_demand` and runs until
  `n` events arrived. -> {events, elapsed_us} (events is -1 on timeout).
  """
  def consume(producer, n, max_demand, timeout_ms) do
    {:ok, _} = Application.ensure_all_started(:gen_stage)
    t0 = System.monotonic_time(:microsecond)
    {:ok, c} = GenStage.start(ErlnodeBenchStage.Consumer, {self(), n})

    {:ok, _} =
      GenStage.sync_subscribe(c,
        to: producer,
        max_demand: max_demand,
        min_demand: div(max_demand, 2),
        cancel: :temporary
      )

    got =
      receive do
        {:stage_done, ^c, got} -> got
      after
        timeout_ms -> -1
      end

    us = System.monotonic_time(:microsecond) - t0
    GenStage.stop(c)
    {got, us}
  end
end

defmodule ErlnodeBenchSyn do
  @doc "Starts syn and adds this node to `scope`."
  def start(scope) do
    {:ok, _} = Application.ensure_all_started(:syn)
    :ok = :syn.add_node_to_scopes([scope])
  end

  @doc """
  Starts `n` processes and registers each as `{tag, i}` (meta `i`), one after the other, as an
  application registering its processes would. They are linked to `holder`, which the caller
  kills to unregister them all. -> {holder, elapsed_us}
  """
  def register_loop(scope, tag, n) do
    holder = spawn(fn -> wait() end)
    t0 = System.monotonic_time(:microsecond)

    for i <- 1..n do
      pid = spawn(fn -> Process.link(holder) && wait() end)
      :ok = :syn.register(scope, {tag, i}, pid, i)
    end

    {holder, System.monotonic_time(:microsecond) - t0}
  end

  defp wait, do: receive(do: (:never -> :ok))

  @doc "Local lookups of `{tag, 1..keys}` in a loop for `dur_ms`. -> {lookups, elapsed_us, misses}"
  def lookup_loop(scope, tag, keys, dur_ms) do
    t0 = System.monotonic_time(:microsecond)
    deadline = t0 + dur_ms * 1000
    {n, misses} = lookups(scope, tag, keys, deadline, 0, 0)
    {n, System.monotonic_time(:microsecond) - t0, misses}
  end

  defp lookups(scope, tag, keys, deadline, n, misses) do
    if rem(n, 256) == 0 and System.monotonic_time(:microsecond) >= deadline do
      {n, misses}
    else
      miss = if :syn.lookup(scope, {tag, rem(n, keys) + 1}) == :undefined, do: 1, else: 0
      lookups(scope, tag, keys, deadline, n + 1, misses + miss)
    end
  end

  @doc """
  `callers` processes on this node call `:erpc.call(target, :syn, :lookup, [scope, {tag, k}])`
  in a loop for `dur_ms`. -> {lookups, elapsed_us, misses}
  """
  def rpc_lookups(target, scope, tag, keys, callers, dur_ms) do
    parent = self()
    t0 = System.monotonic_time(:microsecond)
    deadline = t0 + dur_ms * 1000

    for c <- 1..callers do
      spawn_link(fn -> send(parent, {:rpc_done, rpc_loop(target, scope, tag, keys, deadline, c, 0, 0)}) end)
    end

    {n, misses} =
      Enum.reduce(1..callers, {0, 0}, fn _, {n, m} ->
        receive do
          {:rpc_done, {n1, m1}} -> {n + n1, m + m1}
        end
      end)

    {n, System.monotonic_time(:microsecond) - t0, misses}
  end

  defp rpc_loop(target, scope, tag, keys, deadline, i, n, misses) do
    if rem(n, 16) == 0 and System.monotonic_time(:microsecond) >= deadline do
      {n, misses}
    else
      miss =
        case :erpc.call(target, :syn, :lookup, [scope, {tag, rem(i + n, keys) + 1}], 5000) do
          {pid, _meta} when is_pid(pid) -> 0
          _ -> 1
        end

      rpc_loop(target, scope, tag, keys, deadline, i, n + 1, misses + miss)
    end
  end

  @doc "Waits until this node sees `want` names of `node` in `scope`. -> us waited, or -1"
  def wait_count(scope, node, want, timeout_ms) do
    t0 = System.monotonic_time(:microsecond)
    deadline = t0 + timeout_ms * 1000
    wait(scope, node, want, deadline, t0)
  end

  defp wait(scope, node, want, deadline, t0) do
    now = System.monotonic_time(:microsecond)

    cond do
      :syn.registry_count(scope, node) == want -> now - t0
      now > deadline -> -1
      true -> Process.sleep(1) && wait(scope, node, want, deadline, t0)
    end
  end
end
