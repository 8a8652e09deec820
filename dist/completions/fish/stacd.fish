complete -c stacd -s f -l conf-file -d 'Configuration file' -r -F
complete -c stacd -l sys-conf -d 'Host configuration (sys.conf)' -r -F
complete -c stacd -s s -l syslog -d 'Log to the journal/syslog (priority prefixes on stderr)'
complete -c stacd -l tron -d 'Start with debug tracing on'
complete -c stacd -l check-config -d 'Check the configuration, print the effective configuration and exit (non-zero when anything is wrong), like `sshd -t`'
complete -c stacd -s v -l version -d 'Print the version and exit'
complete -c stacd -s h -l help -d 'Print help'
