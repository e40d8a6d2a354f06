"""Studies end to end: the orchestrator above the four stages (it may import them; they never import it)."""
