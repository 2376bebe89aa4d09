# GenStagePeer: what tests/gen_stage_interop.rs runs on its Elixir nodes (gen_stage 1.3.2 from
# ../shared/peers), loaded with Code.compile_file/1: the Counter producer of GenStage's docs,
# a consumer that keeps what it gets, and a consumer speaking the message protocol by hand to
# check that a producer never sends more than was asked.
defmodule GenStagePeer.Counter do
  use GenStage
  def init(n), do: {:producer, n}
  def handle_demand(d, n), do: {:noreply, Enum.to_list(n..(n + d - 1)), n + d}
end

defmodule GenStagePeer.Collector do
  use GenStage
  def init(acc), do: {:consumer, acc}
  def handle_events(events, _from, acc), do: {:noreply, [], Enum.reverse(events, acc)}
  def handle_call(:events, _from, acc), do: {:reply, Enum.reverse(acc), [], acc}
end

defmodule GenStagePeer do
  @doc "Starts (unlinked) the Counter registered as `name`."
  def counter(name, from \\ 0) do
    {:ok, pid} = GenStage.start(GenStagePeer.Counter, from, name: name)
    pid
  end

  @doc "Starts (unlinked) a Collector subscribed to `to` with `opts`; watched (`ExitWatch.exit_reason/1`)."
  def collector(to, opts) do
    {:ok, c} = GenStage.start(GenStagePeer.Collector, [])
    {:ok, _} = GenStage.sync_subscribe(c, [to: to] ++ opts)
    ExitWatch.watch(c)
    c
  end

  @doc "The first `n` events a Collector got (waits up to 20 s)."
  def events(c, n, deadline \\ nil) do
    deadline = deadline || System.monotonic_time(:millisecond) + 20000
    got = GenStage.call(c, :events)

    cond do
      length(got) >= n -> Enum.take(got, n)
      System.monotonic_time(:millisecond) > deadline -> {:timeout, length(got)}
      true -> Process.sleep(10) && events(c, n, deadline)
    end
  end

  @doc """
  Subscribes to `producer` by hand, asks `ask` at a time (again when half is left) until
  `total` events came; returns {:ok, events} or {:excess, outstanding, got_in_one_message}.
  """
  def raw_consume(producer, total, ask) do
    ref = Process.monitor(producer)
    send(producer, {:"$gen_producer", {self(), ref}, {:subscribe, nil, [max_demand: ask]}})
    send(producer, {:"$gen_producer", {self(), ref}, {:ask, ask}})
    result = raw_loop(producer, ref, total, ask, ask, [])
    send(producer, {:"$gen_producer", {self(), ref}, {:cancel, :normal}})
    result
  end

  defp raw_loop(_producer, _ref, total, _ask, _outstanding, acc) when length(acc) >= total,
    do: {:ok, Enum.reverse(acc)}

  defp raw_loop(producer, ref, total, ask, outstanding, acc) do
    receive do
      {:"$gen_consumer", {_, ^ref}, events} when is_list(events) ->
        n = length(events)

        if n > outstanding do
          {:excess, outstanding, n}
        else
          outstanding = outstanding - n

          outstanding =
            if outstanding <= div(ask, 2) do
              send(producer, {:"$gen_producer", {self(), ref}, {:ask, ask - outstanding}})
              ask
            else
              outstanding
            end

          raw_loop(producer, ref, total, ask, outstanding, Enum.reverse(events, acc))
        end
    after
      20000 -> {:timeout, length(acc)}
    end
  end

  @doc "Hostile asks at `producer`; returns what came back for each."
  def hostile(producer) do
    unknown = make_ref()
    send(producer, {:"$gen_producer", {self(), unknown}, {:ask, 10}})
    r1 = receive do
      {:"$gen_consumer", {_, ^unknown}, m} -> m
    after
      5000 -> :nothing
    end

    ref = Process.monitor(producer)
    send(producer, {:"$gen_producer", {self(), ref}, {:subscribe, nil, []}})
    send(producer, {:"$gen_producer", {self(), ref}, {:ask, -5}})
    send(producer, {:"$gen_producer", {self(), ref}, {:ask, :lots}})
    send(producer, {:"$gen_producer", {self(), ref}, :garbage})
    r2 = receive do
      {:"$gen_consumer", {_, ^ref}, m} -> m
    after
      300 -> :nothing
    end

    # 2^62: events flow chunk by chunk; take 50_000, then cancel
    send(producer, {:"$gen_producer", {self(), ref}, {:ask, 4_611_686_018_427_387_904}})
    n = take(ref, 0, 50_000)
    send(producer, {:"$gen_producer", {self(), ref}, {:cancel, :enough}})
    r3 = drain_until_cancel(ref)
    {r1, r2, n, r3}
  end

  defp take(_ref, n, want) when n >= want, do: n

  defp take(ref, n, want) do
    receive do
      {:"$gen_consumer", {_, ^ref}, events} when is_list(events) -> take(ref, n + length(events), want)
    after
      20000 -> n
    end
  end

  defp drain_until_cancel(ref) do
    receive do
      {:"$gen_consumer", {_, ^ref}, {:cancel, reason}} -> {:cancelled, reason}
      {:"$gen_consumer", {_, ^ref}, _events} -> drain_until_cancel(ref)
    after
      20000 -> :no_cancel
    end
  end
end
