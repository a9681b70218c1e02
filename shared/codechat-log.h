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

gboolean
codechat_log_format_from_string(const gchar *str, CodechatLogFormat *format);
void
codechat_log_init(const gchar *program, CodechatLogFormat format);
gchar *
codechat_log_format_record(CodechatLogFormat format,
			   GLogLevelFlags level,
			   const GLogField *fields,
			   gsize n_fields);

G_END_DECLS
