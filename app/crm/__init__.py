"""CRM connectors (HubSpot, Salesforce, signed webhooks), kept apart from the providers."""
