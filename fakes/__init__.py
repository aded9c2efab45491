"""Stand-ins for Discord and CometAPI: the test suite's doubles, and servers the README, cli/ and bench/ run."""
