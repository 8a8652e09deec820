complete -c stafd -s f -l conf-file -d 'Configuration file' -r -F
complete -c stafd -l sys-conf -d 'Host configuration (sys.conf)' -r -F
complete -c stafd -s s -l syslog -d 'Log to the journal/syslog (priority prefixes on stderr)'
complete -c stafd -l tron -d 'Start with debug tracing on'
complete -c stafd -l check-config -d 'Check the configuration, print the effective configuration and exit (non-zero when anything is wrong), like `sshd -t`'
complete -c stafd -s v -l version -d 'Print the version and exit'
complete -c stafd -s h -l help -d 'Print help'
