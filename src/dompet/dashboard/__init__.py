"""The operator dashboard: login, a self-refreshing monitor page, its JSON API, SAQ's monitor."""
