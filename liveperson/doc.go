// Package liveperson is erasured's access layer to LivePerson: typed clients for
// the Domain API, sentinel OAuth 2.0, Engagement History, Messaging Interactions
// and the Personal Data Deletion API, plus the authentication, rate limiting and
// retry policy that every call goes through.
//
// The contract followed here is shared/LIVEPERSON.md. Requests are built exactly
// as it says; responses are decoded tolerantly where the documentation
// contradicts itself. Callers get decoded records and do their own exact-match
// filtering: LivePerson's keyword search is fuzzy, so a hit is never a target by
// itself.
//
// Errors are *Error values with a Kind; they never carry request bodies or
// identifiers, because the identifiers are the personal data being erased.
package liveperson
