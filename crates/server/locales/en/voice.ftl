# What the voice assistants say (Dialogflow, Alexa, Alice). Short, one or
# two sentences a turn; the same texts go on screen where there is one.

voice-welcome = Hi! I can share the { $program } referral program, tell you its terms, your balance or how your referrals are doing. What would you like?
voice-welcome-any = Hi! I can share a store's referral program. Say, for example: share the referral program of { $example }.
voice-help = You can say: share the referral program, what are the terms, what is my balance, or how are my referrals doing. To stop, say stop.
voice-bye = Goodbye!
voice-fallback = Sorry, I didn't get that. You can ask me to share the referral program, for its terms, your balance or your referral progress.
voice-which-store = Which store do you mean?
voice-ambiguous = Which one do you mean: { $options }?
voice-unknown-store = I don't know a store called { $store }. Which store do you mean?
voice-or = or
voice-terms = { $program }: { $terms }
voice-no-terms = { $program } rewards you when a friend you invite makes a purchase.
voice-share-sent = I've sent your link to your e-mail.
voice-share-shown = Your link is on your screen.
voice-link-account = To get your own link and hear your balance, link your { $program } account in the assistant's app.
voice-balance = You have { $points ->
    [one] one point
   *[other] { $points } points
} with { $program }{ $pending ->
    [0] .
   *[other] , and { $pending } more on the way.
}
voice-expiring = { $points ->
    [one] One point expires
   *[other] { $points } points expire
} on { $date }.
voice-nothing-expiring = Nothing expires soon.
voice-progress = { $joined ->
    [0] No friends have joined through your link yet.
    [one] One friend joined through your link; { $qualified } made a purchase.
   *[other] { $joined } friends joined through your link; { $qualified } made a purchase.
} Rewards earned: { $earned }, pending: { $pending }.
voice-card-title = Your { $program } referral link
voice-card-link-title = Link your { $program } account
voice-weekly-on = Done. Every week I'll send your link to { $contacts ->
    [one] the contact you listed
   *[other] the { $contacts } contacts you listed
}. To stop, say: stop the weekly share.
voice-weekly-no-contacts = First list the friends to invite on your { $program } account page; then I can send them your link every week.
voice-weekly-off = Done, I won't send your link weekly any more.
