"""nodegate's L4 datapath: eBPF programs compiled by bcc, attached at XDP or tc."""
