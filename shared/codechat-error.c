/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include "codechat-error.h"

static const GDBusErrorEntry entries[] = {
    {CODECHAT_ERROR_BAD_JSON, "io.github.codechat.Codechat.Error.BadJson"},
    {CODECHAT_ERROR_BAD_REQUEST, "io.github.codechat.Codechat.Error.BadRequest"},
    {CODECHAT_ERROR_NOT_AUTHENTICATED, "io.github.codechat.Codechat.Error.NotAuthenticated"},
    {CODECHAT_ERROR_AUTH_FAILED, "io.github.codechat.Codechat.Error.AuthFailed"},
    {CODECHAT_ERROR_BAD_NICK, "io.github.codechat.Codechat.Error.BadNick"},
    {CODECHAT_ERROR_NICK_TAKEN, "io.github.codechat.Codechat.Error.NickTaken"},
    {CODECHAT_ERROR_BAD_ROOM, "io.github.codechat.Codechat.Error.BadRoom"},
    {CODECHAT_ERROR_NOT_JOINED, "io.github.codechat.Codechat.Error.NotJoined"},
    {CODECHAT_ERROR_TOO_LONG, "io.github.codechat.Codechat.Error.TooLong"},
    {CODECHAT_ERROR_RATE_LIMITED, "io.github.codechat.Codechat.Error.RateLimited"},
    {CODECHAT_ERROR_UNKNOWN_NICK, "io.github.codechat.Codechat.Error.UnknownNick"},
    {CODECHAT_ERROR_OVERLOADED, "io.github.codechat.Codechat.Error.Overloaded"},
    {CODECHAT_ERROR_INTERNAL, "io.github.codechat.Codechat.Error.Internal"},
    {CODECHAT_ERROR_NOT_CONNECTED, "io.github.codechat.Codechat.Error.NotConnected"},
    {CODECHAT_ERROR_CLOSED, "io.github.codechat.Codechat.Error.Closed"},
    {CODECHAT_ERROR_TIMED_OUT, "io.github.codechat.Codechat.Error.TimedOut"},
    {CODECHAT_ERROR_INVALID_ARGUMENT, "io.github.codechat.Codechat.Error.InvalidArgument"},
};

/* the wire names, indexed by CodechatError; NULL past the protocol's set */
static const gchar *const codes[] = {
    [CODECHAT_ERROR_BAD_JSON] = "bad-json",
    [CODECHAT_ERROR_BAD_REQUEST] = "bad-request",
    [CODECHAT_ERROR_NOT_AUTHENTICATED] = "not-authenticated",
    [CODECHAT_ERROR_AUTH_FAILED] = "auth-failed",
    [CODECHAT_ERROR_BAD_NICK] = "bad-nick",
    [CODECHAT_ERROR_NICK_TAKEN] = "nick-taken",
    [CODECHAT_ERROR_BAD_ROOM] = "bad-room",
    [CODECHAT_ERROR_NOT_JOINED] = "not-joined",
    [CODECHAT_ERROR_TOO_LONG] = "too-long",
    [CODECHAT_ERROR_RATE_LIMITED] = "rate-limited",
    [CODECHAT_ERROR_UNKNOWN_NICK] = "unknown-nick",
    [CODECHAT_ERROR_OVERLOADED] = "overloaded",
    [CODECHAT_ERROR_INTERNAL] = "internal",
};

G_STATIC_ASSERT(G_N_ELEMENTS(entries) == CODECHAT_ERROR_LAST);

GQuark
codechat_error_quark(void)
{
	static gsize quark = 0;
	g_dbus_error_register_error_domain("codechat-error-quark",
					   &quark,
					   entries,
					   G_N_ELEMENTS(entries));
	return (GQuark)quark;
}

/**
 * codechat_error_to_code:
 * @code: a #CodechatError
 *
 * Returns: (transfer none): the protocol's name for @code; errors that
 * have no wire name (client-side ones, unknown values) map to "internal".
 */
const gchar *
codechat_error_to_code(gint code)
{
	if (code < 0 || (gsize)code >= G_N_ELEMENTS(codes) || codes[code] == NULL)
		return "internal";
	return codes[code];
}

/**
 * codechat_error_from_code:
 * @code: a protocol error name such as "bad-room"
 *
 * Returns: the matching #CodechatError, or %CODECHAT_ERROR_INTERNAL for a
 * name this version does not know.
 */
gint
codechat_error_from_code(const gchar *code)
{
	if (code == NULL)
		return CODECHAT_ERROR_INTERNAL;
	for (gsize i = 0; i < G_N_ELEMENTS(codes); i++) {
		if (codes[i] != NULL && g_strcmp0(codes[i], code) == 0)
			return (gint)i;
	}
	return CODECHAT_ERROR_INTERNAL;
}
