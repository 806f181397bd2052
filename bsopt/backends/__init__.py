"""Phase 3: turning BuildConfigs into BuildResults."""
