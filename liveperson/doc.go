// Package liveperson is erasured's access layer to LivePerson: typed clients for
// the Domain API, sentinel OAuth 2.0, Engagement History, Messaging Interactions
// and the Personal Data Deletion API, plus the authentication, rate limiting and
// retry policy that every call goes through.
//
// Requests are built as LivePerson's public documentation describes them;
// responses are decoded tolerantly wherever the documentation shows more than
// one shape (personalInfo flat or nested, a participant list or object, the
// Domain API's one-entry or list answer, deletion answers with or without
// delete_json). Callers get decoded records and do their own exact-match
// filtering: LivePerson's keyword search is fuzzy, so a hit is never a target by
// itself. A record says whether its content (transcript or messages) was read;
// only then can it show that LivePerson has masked it.
//
// Errors are *Error values with a Kind; they never carry request bodies or
// identifiers, because the identifiers are the personal data being erased.
package liveperson
