"""What several test groups share: paths, the tshark and Zeek oracles, the bulk-decoder harness, builders."""
