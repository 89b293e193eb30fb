"""The synthetic shapes world the bundled models learn and are judged on."""
