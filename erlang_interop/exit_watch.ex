# ExitWatch: how a process ended, for the interop tests' Elixir helpers (syn_peer.ex,
# gen_stage_peer.ex), loaded with Code.compile_file/1 before them.
defmodule ExitWatch do
  @doc "Starts watching `pid`; `exit_reason/1` then tells how it ended, even if it died long before."
  def watch(pid) do
    w =
      spawn(fn ->
        ref = Process.monitor(pid)

        receive do
          {:DOWN, ^ref, :process, ^pid, reason} -> answer(reason)
        end
      end)

    :persistent_term.put({ExitWatch, pid}, w)
    pid
  end

  defp answer(reason) do
    receive do
      {:reason, from} -> send(from, {:reason, reason}) && answer(reason)
    end
  end

  @doc "The exit reason of a watched process (waits up to 20 s, else :still_alive)."
  def exit_reason(pid) do
    send(:persistent_term.get({ExitWatch, pid}), {:reason, self()})

    receive do
      {:reason, reason} -> reason
    after
      20000 -> :still_alive
    end
  end
end
