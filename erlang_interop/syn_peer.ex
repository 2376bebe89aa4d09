# SynPeer: what tests/syn_interop.rs runs on its Elixir nodes (syn 3.4.1 from ../shared/peers),
# loaded with Code.compile_file/1. Each function does what an application using syn would:
# start syn and its scopes, register GenServers with {:via, :syn, ...}, join groups, answer
# multi calls. A `member` answers `ErlnodePeer.got/1` (erlang_interop/ecosystem_peer.ex).
defmodule SynPeer do
  @doc "Starts syn and adds this node to `scopes`, as `config :syn, scopes: [...]` would."
  def start(scopes) do
    {:ok, _} = Application.ensure_all_started(:syn)
    :ok = :syn.add_node_to_scopes(scopes)
  end

  @doc "Starts (unlinked) a SynPeer.Echo GenServer registered as `{:via, :syn, {scope, name, meta}}`."
  def echo(scope, name, meta) do
    {:ok, pid} = GenServer.start(SynPeer.Echo, nil, name: {:via, :syn, {scope, name, meta}})
    pid
  end

  @doc "A process that joins `group` with `meta`, answers multi calls with {:pong, node()} and keeps every other message."
  def member(scope, group, meta) do
    parent = self()

    pid =
      spawn(fn ->
        :ok = :syn.join(scope, group, self(), meta)
        send(parent, {:joined, self()})
        keep([])
      end)

    receive do
      {:joined, ^pid} -> pid
    end
  end

  @doc "A process registered as `name` that just waits, watched (`ExitWatch.exit_reason/1`)."
  def holder(scope, name, meta) do
    pid = ExitWatch.watch(spawn(fn -> keep([]) end))
    :ok = :syn.register(scope, name, pid, meta)
    pid
  end

  defp keep(acc) do
    receive do
      {:syn_multi_call, _msg, caller, _meta} ->
        :syn.multi_call_reply(caller, {:pong, node()})
        keep(acc)

      {:"$erlnode_get", from} ->
        send(from, {:"$erlnode_got", Enum.reverse(acc)})
        keep(acc)

      m ->
        keep([m | acc])
    end
  end

  @doc "Members of `group` on this node's view, as `{node, meta}` pairs, sorted."
  def members(scope, group) do
    :syn.members(scope, group) |> Enum.map(fn {pid, meta} -> {node(pid), meta} end) |> Enum.sort()
  end
end

defmodule SynPeer.Echo do
  @moduledoc "A GenServer that answers every call with {:echo, node(), request}."
  use GenServer
  def init(nil), do: {:ok, nil}
  def handle_call(req, _from, s), do: {:reply, {:echo, node(), req}, s}
end
