/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

#define CODECHAT_ERROR (codechat_error_quark())

/**
 * CodechatError:
 *
 * The error domain shared by the daemon, the client and the D-Bus
 * service.  The first values map one to one onto the protocol's
 * `error.code` strings (PROTOCOL.md, "Errors"); the rest are for the
 * client side and never go on the wire.
 */
typedef enum {
	CODECHAT_ERROR_BAD_JSON,
	CODECHAT_ERROR_BAD_REQUEST,
	CODECHAT_ERROR_NOT_AUTHENTICATED,
	CODECHAT_ERROR_AUTH_FAILED,
	CODECHAT_ERROR_BAD_NICK,
	CODECHAT_ERROR_NICK_TAKEN,
	CODECHAT_ERROR_BAD_ROOM,
	CODECHAT_ERROR_NOT_JOINED,
	CODECHAT_ERROR_TOO_LONG,
	CODECHAT_ERROR_RATE_LIMITED,
	CODECHAT_ERROR_UNKNOWN_NICK,
	CODECHAT_ERROR_OVERLOADED,
	CODECHAT_ERROR_INTERNAL,
	/* client side only */
	CODECHAT_ERROR_NOT_CONNECTED,
	CODECHAT_ERROR_CLOSED,
	CODECHAT_ERROR_TIMED_OUT,
	CODECHAT_ERROR_INVALID_ARGUMENT,
	CODECHAT_ERROR_LAST
} CodechatError;

GQuark
codechat_error_quark(void);
const gchar *
codechat_error_to_code(gint code);
gint
codechat_error_from_code(const gchar *code);

G_END_DECLS
