"""Tabletop exercises: scenarios, the player, the scorecard and the after-action report."""
