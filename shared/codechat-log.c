/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include <json-glib/json-glib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codechat-log.h"
#include "codechat-protocol.h"

static CodechatLogFormat log_format = CODECHAT_LOG_FORMAT_AUTO;
static gchar *log_program = NULL;

gboolean
codechat_log_format_from_string(const gchar *str, CodechatLogFormat *format)
{
	if (g_strcmp0(str, "text") == 0)
		*format = CODECHAT_LOG_FORMAT_TEXT;
	else if (g_strcmp0(str, "json") == 0)
		*format = CODECHAT_LOG_FORMAT_JSON;
	else if (g_strcmp0(str, "journal") == 0)
		*format = CODECHAT_LOG_FORMAT_JOURNAL;
	else if (g_strcmp0(str, "auto") == 0)
		*format = CODECHAT_LOG_FORMAT_AUTO;
	else
		return FALSE;
	return TRUE;
}

static const gchar *
level_name(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "error";
	if (level & G_LOG_LEVEL_CRITICAL)
		return "critical";
	if (level & G_LOG_LEVEL_WARNING)
		return "warning";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "message";
	if (level & G_LOG_LEVEL_INFO)
		return "info";
	return "debug";
}

static gchar *
field_value(const GLogField *field)
{
	if (field->length < 0)
		return g_strdup(field->value);
	return g_strndup(field->value, (gsize)field->length);
}

/**
 * codechat_log_format_record:
 *
 * One log record as one line (no newline): text as
 * `HH:MM:SS.mmm LEVEL DOMAIN: MESSAGE [FIELD=value ...]`, or a JSON object
 * with `ts`, `level`, `domain`, `message` and every CODECHAT_* field.
 */
gchar *
codechat_log_format_record(CodechatLogFormat format,
			   GLogLevelFlags level,
			   const GLogField *fields,
			   gsize n_fields)
{
	g_autofree gchar *message = NULL;
	g_autofree gchar *domain = NULL;
	g_autofree gchar *ts = codechat_timestamp_format(g_get_real_time());
	g_autoptr(GPtrArray) extra = g_ptr_array_new();

	for (gsize i = 0; i < n_fields; i++) {
		if (g_strcmp0(fields[i].key, "MESSAGE") == 0)
			message = field_value(&fields[i]);
		else if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0)
			domain = field_value(&fields[i]);
		else if (g_str_has_prefix(fields[i].key, "CODECHAT_") && fields[i].length < 0)
			g_ptr_array_add(extra, (gpointer)&fields[i]);
	}

	if (format == CODECHAT_LOG_FORMAT_JSON) {
		g_autoptr(JsonBuilder) builder = json_builder_new_immutable();
		json_builder_begin_object(builder);
		json_builder_set_member_name(builder, "ts");
		json_builder_add_string_value(builder, ts);
		json_builder_set_member_name(builder, "level");
		json_builder_add_string_value(builder, level_name(level));
		json_builder_set_member_name(builder, "domain");
		json_builder_add_string_value(builder, domain != NULL ? domain : log_program);
		json_builder_set_member_name(builder, "message");
		json_builder_add_string_value(builder, message != NULL ? message : "");
		for (guint i = 0; i < extra->len; i++) {
			const GLogField *f = g_ptr_array_index(extra, i);
			json_builder_set_member_name(builder, f->key);
			json_builder_add_string_value(builder, f->value);
		}
		json_builder_end_object(builder);
		return codechat_builder_to_string(builder);
	} else {
		GString *line = g_string_new(NULL);
		/* the time of day is enough on a terminal; the date is in JSON */
		g_string_append_printf(line,
				       "%.12s %s %s: %s",
				       ts + 11,
				       level_name(level),
				       domain != NULL ? domain : log_program,
				       message != NULL ? message : "");
		for (guint i = 0; i < extra->len; i++) {
			const GLogField *f = g_ptr_array_index(extra, i);
			g_string_append_printf(line, " %s=%s", f->key, (const gchar *)f->value);
		}
		return g_string_free(line, FALSE);
	}
}

static GLogWriterOutput
writer_cb(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
	g_autofree gchar *line = NULL;
	const gchar *domain = NULL;
	CodechatLogFormat format = log_format;

	for (gsize i = 0; i < n_fields; i++) {
		if (g_strcmp0(fields[i].key, "GLIB_DOMAIN") == 0) {
			domain = fields[i].value;
			break;
		}
	}
	/* G_MESSAGES_DEBUG and g_log_set_debug_enabled() as GLib users expect */
	if (g_log_writer_default_would_drop(level, domain))
		return G_LOG_WRITER_HANDLED;
	/* --verbose means our own debug output; G_MESSAGES_DEBUG=all still
	 * shows libsoup's frame-by-frame chatter to those who ask for it */
	if ((level & G_LOG_LEVEL_DEBUG) && g_getenv("G_MESSAGES_DEBUG") == NULL &&
	    (domain == NULL || !g_str_has_prefix(domain, "codechat")))
		return G_LOG_WRITER_HANDLED;
	if (format == CODECHAT_LOG_FORMAT_AUTO)
		format = g_log_writer_is_journald(fileno(stderr)) ? CODECHAT_LOG_FORMAT_JOURNAL
								  : CODECHAT_LOG_FORMAT_TEXT;
	if (format == CODECHAT_LOG_FORMAT_JOURNAL &&
	    g_log_writer_journald(level, fields, n_fields, user_data) == G_LOG_WRITER_HANDLED)
		return G_LOG_WRITER_HANDLED;
	if (format == CODECHAT_LOG_FORMAT_JOURNAL)
		format = CODECHAT_LOG_FORMAT_TEXT;

	line = codechat_log_format_record(format, level, fields, n_fields);
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
	return G_LOG_WRITER_HANDLED;
}

/**
 * codechat_log_init:
 * @program: the name for records without a domain
 *
 * Installs the structured log writer of every codechat program.
 */
void
codechat_log_init(const gchar *program, CodechatLogFormat format)
{
	g_free(log_program);
	log_program = g_strdup(program);
	log_format = format;
	g_log_set_writer_func(writer_cb, NULL, NULL);
}
