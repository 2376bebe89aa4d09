# The article's KV and PubSub servers in Elixir, doing the same work as erlnode's
# src/apps/kv.rs and src/apps/pubsub.rs: the BEAM side of the cluster benchmarks
# (src/bin/erlnode-bench/). Compiled at run time on the BEAM server node
# (Code.compile_file/1) and started by erlnode_bench's bench_ctl.

defmodule BenchKV do
  @moduledoc "The article's KV: `{:get, k}` -> value or nil, `{:set, k, v}` -> true."
  use GenServer

  @impl true
  def init(_), do: {:ok, %{}}

  @impl true
  def handle_call({:get, key}, _from, state), do: {:reply, Map.get(state, key), state}
  def handle_call({:set, key, value}, _from, state), do: {:reply, true, Map.put(state, key, value)}
  def handle_call(:keys, _from, state), do: {:reply, Map.keys(state), state}
  def handle_call(_other, _from, state), do: {:reply, :not_implemented, state}
end

defmodule BenchPS do
  @moduledoc """
  The article's PubSub: subscribers newest first (`[sender | subscribers]`), each monitored
  once and dropped on `DOWN`; a broadcast goes to every subscriber but the caller.
  """
  use GenServer

  @impl true
  def init(_), do: {:ok, {%{}, %{}}}

  @impl true
  def handle_call({:subscribe, topic}, {pid, _}, {topics, monitors}) do
    subs = Map.get(topics, topic, [])
    topics = if pid in subs, do: topics, else: Map.put(topics, topic, [pid | subs])
    monitors = if Map.has_key?(monitors, pid), do: monitors, else: Map.put(monitors, pid, Process.monitor(pid))
    {:reply, true, {topics, monitors}}
  end

  def handle_call({:subscribers, topic}, _from, {topics, _} = state) do
    {:reply, Map.get(topics, topic, []), state}
  end

  def handle_call({:broadcast, topic, message}, {sender, _}, {topics, _} = state) do
    for pid <- Map.get(topics, topic, []), pid != sender, do: send(pid, message)
    {:reply, true, state}
  end

  def handle_call(_other, _from, state), do: {:reply, :not_implemented, state}

  @impl true
  def handle_info({:DOWN, _ref, :process, pid, _reason}, {topics, monitors}) do
    topics = Map.new(topics, fn {t, subs} -> {t, List.delete(subs, pid)} end)
    {:noreply, {topics, Map.delete(monitors, pid)}}
  end

  def handle_info(_msg, state), do: {:noreply, state}
end
