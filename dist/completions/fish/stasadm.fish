# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_stasadm_global_optspecs
    string join \n c/conf-file= v/version h/help
end

function __fish_stasadm_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_stasadm_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_stasadm_using_subcommand
    set -l cmd (__fish_stasadm_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c stasadm -n "__fish_stasadm_needs_command" -s c -l conf-file -d 'The host configuration file to update' -r -F
complete -c stasadm -n "__fish_stasadm_needs_command" -s v -l version -d 'Print the version and exit'
complete -c stasadm -n "__fish_stasadm_needs_command" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "hostnqn" -d 'Generate the host NQN and save it (key `nqn`)'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "hostid" -d 'Generate a random host ID and save it (key `id`)'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "set-symname" -d 'Save the host\'s symbolic name (key `symname`), sent in DIM registrations'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "clear-symname" -d 'Remove the symbolic name'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "discover" -d 'Connect to a discovery controller and print its discovery log page'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "browse" -d 'List the discovery controllers announced over mDNS (TP8009), with the built-in querier (no daemon; needs UDP port 5353 and multicast) or through avahi-daemon'
complete -c stasadm -n "__fish_stasadm_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stasadm -n "__fish_stasadm_using_subcommand hostnqn" -s f -l file -d 'Also write it to this file and point sys.conf at it (file://)' -r -F
complete -c stasadm -n "__fish_stasadm_using_subcommand hostnqn" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_using_subcommand hostid" -s f -l file -d 'Also write it to this file and point sys.conf at it (file://)' -r -F
complete -c stasadm -n "__fish_stasadm_using_subcommand hostid" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_using_subcommand set-symname" -s f -l file -d 'Also write it to this file and point sys.conf at it (file://)' -r -F
complete -c stasadm -n "__fish_stasadm_using_subcommand set-symname" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_using_subcommand clear-symname" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s t -l transport -d 'Transport: tcp, rdma, fc or loop' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s a -l traddr -d 'Discovery controller address' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s s -l trsvcid -d 'Discovery controller port (tcp default 8009, rdma 4420)' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s n -l nqn -d 'Discovery subsystem NQN' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s w -l host-traddr -d 'Local address to connect from' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s f -l host-iface -d 'Local interface to connect through' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s q -l hostnqn -d 'Host NQN (default: /etc/nvme/hostnqn)' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s I -l hostid -d 'Host ID (default: /etc/nvme/hostid)' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -l raw -d 'Also write the raw log page bytes to this file' -r -F
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -l json -d 'Print a JSON array of nvme-stas DLPE dicts instead of a table'
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -l cli-names -d 'Spell table values as nvme-cli does'
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -l keep -d 'Keep the connection (with a 30 s keep-alive) instead of disconnecting'
complete -c stasadm -n "__fish_stasadm_using_subcommand discover" -s h -l help -d 'Print help'
complete -c stasadm -n "__fish_stasadm_using_subcommand browse" -s t -l timeout -d 'How long to listen, in seconds' -r
complete -c stasadm -n "__fish_stasadm_using_subcommand browse" -l backend -d 'Who listens: the built-in querier, avahi-daemon over the system bus (it does not report TTLs: they print as 0), or auto (avahi-daemon if it is on the bus, else built-in)' -r -f -a "auto\t'avahi-daemon if it is on the system bus, else built-in'
builtin\t'the built-in querier (no daemon)'
avahi\t'avahi-daemon over the system bus'"
complete -c stasadm -n "__fish_stasadm_using_subcommand browse" -l json -d 'Print a JSON array instead of a table'
complete -c stasadm -n "__fish_stasadm_using_subcommand browse" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "hostnqn" -d 'Generate the host NQN and save it (key `nqn`)'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "hostid" -d 'Generate a random host ID and save it (key `id`)'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "set-symname" -d 'Save the host\'s symbolic name (key `symname`), sent in DIM registrations'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "clear-symname" -d 'Remove the symbolic name'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "discover" -d 'Connect to a discovery controller and print its discovery log page'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "browse" -d 'List the discovery controllers announced over mDNS (TP8009), with the built-in querier (no daemon; needs UDP port 5353 and multicast) or through avahi-daemon'
complete -c stasadm -n "__fish_stasadm_using_subcommand help; and not __fish_seen_subcommand_from hostnqn hostid set-symname clear-symname discover browse help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
