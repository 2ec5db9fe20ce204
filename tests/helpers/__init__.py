"""What several test files share: tools, daemons, modules."""
