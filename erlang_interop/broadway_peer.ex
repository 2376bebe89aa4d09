# BroadwayPeer: the pipeline tests/gen_stage_interop.rs pushes into from Rust (broadway 1.3.0
# from ../shared/peers, Broadway.DummyProducer as build.sh's smoke test uses), loaded with
# Code.compile_file/1. Data {:fail, x} is failed with :boom; anything else becomes {:done, data}.
defmodule BroadwayPeer do
  use Broadway
  alias Broadway.Message

  def start do
    {:ok, _} = Application.ensure_all_started(:broadway)

    {:ok, pid} =
      Broadway.start_link(__MODULE__,
        name: __MODULE__,
        producer: [module: {Broadway.DummyProducer, []}],
        processors: [default: [concurrency: 2]],
        batchers: [default: [batch_size: 10, batch_timeout: 50]]
      )

    Process.unlink(pid)
    :ok
  end

  @impl true
  def handle_message(_, %Message{data: {:fail, _}} = m, _), do: Message.failed(m, :boom)
  def handle_message(_, %Message{data: d} = m, _), do: Message.put_data(m, {:done, d})

  @impl true
  def handle_batch(_, messages, _, _), do: messages
end
