# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_stafctl_global_optspecs
    string join \n json v/version h/help
end

function __fish_stafctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_stafctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_stafctl_using_subcommand
    set -l cmd (__fish_stafctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c stafctl -n "__fish_stafctl_needs_command" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_needs_command" -s v -l version -d 'Print the version and exit'
complete -c stafctl -n "__fish_stafctl_needs_command" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "tron" -d 'Turn debug tracing on'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "troff" -d 'Turn debug tracing off'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "status" -d 'Everything stafd knows: process information and every controller'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "ls" -d 'List the discovery controllers'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "dlp" -d 'The cached discovery log page of one discovery controller'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "adlp" -d 'The cached discovery log pages of all discovery controllers'
complete -c stafctl -n "__fish_stafctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stafctl -n "__fish_stafctl_using_subcommand tron" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand tron" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand troff" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand troff" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand status" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand ls" -s d -l detailed -d 'Show every detail'
complete -c stafctl -n "__fish_stafctl_using_subcommand ls" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand ls" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s t -l transport -d 'Transport' -r -f -a "tcp\t''
rdma\t''
fc\t''
loop\t''"
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s a -l traddr -d 'Discovery controller address' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s s -l trsvcid -d 'Discovery controller port' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s w -l host-traddr -d 'Local address' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s f -l host-iface -d 'Local interface' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s q -l host-nqn -d 'Host NQN (default: the one in /etc/stas/sys.conf)' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s n -l nqn -d 'Discovery subsystem NQN' -r
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand dlp" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand adlp" -s d -l detailed -d 'Show every detail of each controller'
complete -c stafctl -n "__fish_stafctl_using_subcommand adlp" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand adlp" -s h -l help -d 'Print help'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "tron" -d 'Turn debug tracing on'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "troff" -d 'Turn debug tracing off'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "status" -d 'Everything stafd knows: process information and every controller'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "ls" -d 'List the discovery controllers'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "dlp" -d 'The cached discovery log page of one discovery controller'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "adlp" -d 'The cached discovery log pages of all discovery controllers'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls dlp adlp help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from tron" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from troff" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from status" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from dlp" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from adlp" -l json -d 'Print JSON instead of tables'
complete -c stafctl -n "__fish_stafctl_using_subcommand help; and __fish_seen_subcommand_from help" -l json -d 'Print JSON instead of tables'
