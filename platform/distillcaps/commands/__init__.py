"""The subcommands of ``distillcaps`` (distillcaps.cli), one module per room, at the top layer: a
command may use any room, and no room imports a command."""
