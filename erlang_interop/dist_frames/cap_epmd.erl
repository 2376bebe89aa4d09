%% An EPMD stand-in for the capture: every node listens on the port in the application
%% variable kernel/cap_listen_port and finds every other node at kernel/cap_peer_port (the
%% recording proxy). No real EPMD is involved.
-module(cap_epmd).
-export([start_link/0, register_node/2, register_node/3, listen_port_please/2,
         port_please/2, port_please/3, names/1, address_please/3]).

start_link() -> ignore.
register_node(_Name, _Port) -> {ok, 1}.
register_node(Name, Port, _Family) -> register_node(Name, Port).
listen_port_please(_Name, _Host) -> application:get_env(kernel, cap_listen_port).
port_please(_Name, _Host) ->
    {ok, P} = application:get_env(kernel, cap_peer_port),
    {port, P, 6}.
port_please(Name, Host, _Timeout) -> port_please(Name, Host).
names(_Host) -> {error, address}.
address_please(_Name, Host, Family) -> inet:getaddr(Host, Family).
