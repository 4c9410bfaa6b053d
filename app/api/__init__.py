"""HTTP edge of the app: request strictness on both tiers, API tokens, rate limits, the OpenAPI document."""
