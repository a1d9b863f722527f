"""The messaging domain, in rooms by the flow of a message.

- ``intake``: a send intent becomes a durable message (the API's path, the one-statement fast
  path, routing to an account);
- ``dispatch``: claims, fair shares, sending, outcomes, the release of what waited;
- ``receipts``: the webhook inbox and its drain (statuses and inbound messages);
- ``conversations``: what an inbound message means (keywords, journeys, routing rules);
- ``compliance``: consent, keywords' lists, quiet hours, the policy, privacy, data subjects;
- ``recovery``: the stuck-work report, reconciliation and redrive.

Beside the rooms: the state machine applied (``states``, ``moves``) and contacts, which every
room shares."""
