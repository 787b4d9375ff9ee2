"""The process wiring: it alone imports bot, web and world together.

The composition root above every other package: `cli` is the `shared-world` command, `check`
the plain-words health check and the invite URL (with the Discord permissions the bot needs),
`runner` the one event loop that starts the world service, the HTTP front door and the bot.
Nothing in world/, storage/, bot/ or web/ imports this package (tests/test_layering.py checks
every arrow).
"""
