"""The hot read path: may this account use the integration now? Answered from our store."""
