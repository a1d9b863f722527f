"""Message templates: typed variables, a logic-free renderer, locales and versions."""
