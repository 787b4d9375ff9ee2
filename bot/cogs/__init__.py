"""One cog per concern: adventure (channel play), keys, world admin, the rounds loop."""
