# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_stacctl_global_optspecs
    string join \n json v/version h/help
end

function __fish_stacctl_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_stacctl_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_stacctl_using_subcommand
    set -l cmd (__fish_stacctl_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c stacctl -n "__fish_stacctl_needs_command" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_needs_command" -s v -l version -d 'Print the version and exit'
complete -c stacctl -n "__fish_stacctl_needs_command" -s h -l help -d 'Print help'
complete -c stacctl -n "__fish_stacctl_needs_command" -f -a "tron" -d 'Turn debug tracing on'
complete -c stacctl -n "__fish_stacctl_needs_command" -f -a "troff" -d 'Turn debug tracing off'
complete -c stacctl -n "__fish_stacctl_needs_command" -f -a "status" -d 'Everything stacd knows: process information and every controller'
complete -c stacctl -n "__fish_stacctl_needs_command" -f -a "ls" -d 'List the I/O controllers'
complete -c stacctl -n "__fish_stacctl_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stacctl -n "__fish_stacctl_using_subcommand tron" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand tron" -s h -l help -d 'Print help'
complete -c stacctl -n "__fish_stacctl_using_subcommand troff" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand troff" -s h -l help -d 'Print help'
complete -c stacctl -n "__fish_stacctl_using_subcommand status" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand status" -s h -l help -d 'Print help'
complete -c stacctl -n "__fish_stacctl_using_subcommand ls" -s d -l detailed -d 'Show every detail'
complete -c stacctl -n "__fish_stacctl_using_subcommand ls" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand ls" -s h -l help -d 'Print help'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -f -a "tron" -d 'Turn debug tracing on'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -f -a "troff" -d 'Turn debug tracing off'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -f -a "status" -d 'Everything stacd knows: process information and every controller'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -f -a "ls" -d 'List the I/O controllers'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and not __fish_seen_subcommand_from tron troff status ls help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and __fish_seen_subcommand_from tron" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and __fish_seen_subcommand_from troff" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and __fish_seen_subcommand_from status" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and __fish_seen_subcommand_from ls" -l json -d 'Print JSON instead of tables'
complete -c stacctl -n "__fish_stacctl_using_subcommand help; and __fish_seen_subcommand_from help" -l json -d 'Print JSON instead of tables'
