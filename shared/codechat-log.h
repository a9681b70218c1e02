/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum {
	CODECHAT_LOG_FORMAT_AUTO, /* the journal when stderr is the journal, else text */
	CODECHAT_LOG_FORMAT_TEXT,
	CODECHAT_LOG_FORMAT_JSON,
	CODECHAT_LOG_FORMAT_JOURNAL,
} CodechatLogFormat;

/**
 * CodechatLogFields:
 * @room: (nullable): the room, logged as `CODECHAT_ROOM`
 * @nick: (nullable): the nick, logged as `CODECHAT_NICK`
 * @peer: (nullable): the remote address, logged as `CODECHAT_PEER`
 * @msgid: the message id, logged as `CODECHAT_MSGID`; 0 for none
 *
 * The fields of one record that say what it is about; those that are
 * %NULL (or 0) are left out.  Build them in place with
 * CODECHAT_LOG_FIELDS().
 */
typedef struct {
	const gchar *room;
	const gchar *nick;
	const gchar *peer;
	gint64 msgid;
} CodechatLogFields;

/* CODECHAT_LOG_FIELDS(.room = name, .nick = nick): a (const CodechatLogFields *) */
#define CODECHAT_LOG_FIELDS(...) (&(const CodechatLogFields){__VA_ARGS__})

/* the equivalents of g_debug() and friends, with fields:
 * codechat_info(CODECHAT_LOG_FIELDS(.peer = peer), "peer %s joined", peer) */
#define codechat_log(level, fields, ...)                                                           \
	codechat_log_structured(G_LOG_DOMAIN,                                                      \
				(level),                                                           \
				__FILE__,                                                          \
				G_STRINGIFY(__LINE__),                                             \
				G_STRFUNC,                                                         \
				(fields),                                                          \
				__VA_ARGS__)
#define codechat_debug(fields, ...)   codechat_log(G_LOG_LEVEL_DEBUG, fields, __VA_ARGS__)
#define codechat_info(fields, ...)    codechat_log(G_LOG_LEVEL_INFO, fields, __VA_ARGS__)
#define codechat_message(fields, ...) codechat_log(G_LOG_LEVEL_MESSAGE, fields, __VA_ARGS__)
#define codechat_warning(fields, ...) codechat_log(G_LOG_LEVEL_WARNING, fields, __VA_ARGS__)

gboolean
codechat_log_format_from_string(const gchar *str, CodechatLogFormat *format);
void
codechat_log_init(const gchar *program, CodechatLogFormat format);
CodechatLogFormat
codechat_log_get_format(void);
gchar *
codechat_log_format_record(CodechatLogFormat format,
			   GLogLevelFlags level,
			   const GLogField *fields,
			   gsize n_fields);
void
codechat_log_structured(const gchar *log_domain,
			GLogLevelFlags level,
			const gchar *file,
			const gchar *line,
			const gchar *func,
			const CodechatLogFields *fields,
			const gchar *format,
			...) G_GNUC_PRINTF(7, 8);

G_END_DECLS
