/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codechat-log.h"
#include "codechat-protocol.h"

/**
 * SECTION:codechat-log
 *
 * The one log writer of codechatd and codechat.  It writes each record
 * to the journal, or as one line on standard error: text for people, or
 * a JSON object for machines.  Only the CODECHAT_* fields are written
 * besides the time, level, domain and message; the journal gets them all.
 *
 * Values are escaped so that one record is always one line: whatever a
 * peer managed to put in a nick, a room or an error message cannot forge
 * a record of its own or drive the terminal.
 */

static CodechatLogFormat log_format = CODECHAT_LOG_FORMAT_TEXT;
static gchar *log_program = NULL;
/* g_log_set_always_fatal() (G_DEBUG=fatal-warnings, g_test_init()) only
 * acts in GLib's own writer; ours has to honour it itself */
static GLogLevelFlags log_fatal_mask = 0;

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

/* the length of a field's value, which is NUL-terminated when length < 0 */
static gsize
field_length(const GLogField *field)
{
	if (field->value == NULL)
		return 0;
	if (field->length < 0)
		return strlen(field->value);
	return (gsize)field->length;
}

static gboolean
field_is(const GLogField *field, const gchar *key)
{
	return g_strcmp0(field->key, key) == 0;
}

/*
 * Appends @len bytes of @value, escaped.  Text: a backslash, control
 * characters (C0, DEL, C1, the Unicode line and paragraph separators) and
 * bytes that are not UTF-8 become C-style escapes (\n, \t, \x1b, \u0085),
 * so that a value can neither end the line nor send escape sequences to a
 * terminal.  JSON: the escapes of RFC 8259 for the same characters; bytes
 * that are not UTF-8 become U+FFFD so that the line stays valid JSON.
 */
static void
append_escaped(GString *out, const gchar *value, gsize len, gboolean json)
{
	const gchar *p = value;
	const gchar *end = value + len;

	while (p < end) {
		/* a NUL is a character here; to GLib it is a broken one */
		gunichar c = *p == '\0' ? 0 : g_utf8_get_char_validated(p, end - p);
		gsize n;

		if (c == (gunichar)-1 || c == (gunichar)-2) {
			/* not UTF-8 (or cut short): one byte at a time */
			if (json)
				g_string_append(out, "\\ufffd");
			else
				g_string_append_printf(out, "\\x%02x", (guchar)*p);
			p++;
			continue;
		}
		n = c == 0 ? 1 : (gsize)(g_utf8_next_char(p) - p);
		switch (c) {
		case '\\':
			g_string_append(out, "\\\\");
			break;
		case '"':
			g_string_append(out, json ? "\\\"" : "\"");
			break;
		case '\n':
			g_string_append(out, "\\n");
			break;
		case '\r':
			g_string_append(out, "\\r");
			break;
		case '\t':
			g_string_append(out, "\\t");
			break;
		default:
			if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029) {
				if (json || c >= 0x80)
					g_string_append_printf(out, "\\u%04x", c);
				else
					g_string_append_printf(out, "\\x%02x", c);
			} else {
				g_string_append_len(out, p, (gssize)n);
			}
			break;
		}
		p += n;
	}
}

static void
append_json_member(GString *out, const gchar *key, const gchar *value, gsize len)
{
	g_string_append_c(out, ',');
	g_string_append_c(out, '"');
	append_escaped(out, key, strlen(key), TRUE);
	g_string_append(out, "\":\"");
	append_escaped(out, value, len, TRUE);
	g_string_append_c(out, '"');
}

/* a field value in a text line: bare when that is unambiguous, else quoted */
static void
append_text_value(GString *out, const gchar *value, gsize len)
{
	gboolean quote = len == 0;

	for (gsize i = 0; i < len && !quote; i++) {
		guchar c = (guchar)value[i];
		quote = c <= ' ' || c == '"' || c == '=' || c == '\\' || c >= 0x7f;
	}
	if (!quote) {
		g_string_append_len(out, value, (gssize)len);
		return;
	}
	g_string_append_c(out, '"');
	for (gsize start = 0, i = 0; i <= len; i++) {
		/* a quote inside the quotes is the one thing the escaping
		 * above leaves alone in text */
		if (i == len || value[i] == '"') {
			append_escaped(out, value + start, i - start, FALSE);
			if (i < len)
				g_string_append(out, "\\\"");
			start = i + 1;
		}
	}
	g_string_append_c(out, '"');
}

/**
 * codechat_log_format_record:
 * @format: %CODECHAT_LOG_FORMAT_JSON, else text
 *
 * One log record as one line, without the newline.  Text is
 * `HH:MM:SS.mmm LEVEL DOMAIN: MESSAGE [FIELD=value ...]` with the
 * CODECHAT_* fields in the order given, their values quoted when they hold
 * spaces, quotes or escapes; JSON is an object with `ts` (RFC 3339, UTC),
 * `level`, `domain`, `message` and then the CODECHAT_* fields.  Field
 * values may be NUL-terminated (length < 0) or not.
 *
 * Returns: (transfer full): the line
 */
gchar *
codechat_log_format_record(CodechatLogFormat format,
			   GLogLevelFlags level,
			   const GLogField *fields,
			   gsize n_fields)
{
	g_autofree gchar *ts = codechat_timestamp_format(g_get_real_time());
	const GLogField *message = NULL;
	const GLogField *domain = NULL;
	const gchar *program = log_program != NULL ? log_program : "codechat";
	GString *line = g_string_new(NULL);

	for (gsize i = 0; i < n_fields; i++) {
		if (message == NULL && field_is(&fields[i], "MESSAGE"))
			message = &fields[i];
		else if (domain == NULL && field_is(&fields[i], "GLIB_DOMAIN"))
			domain = &fields[i];
	}

	if (format == CODECHAT_LOG_FORMAT_JSON) {
		g_string_append_printf(line,
				       "{\"ts\":\"%s\",\"level\":\"%s\"",
				       ts,
				       level_name(level));
		if (domain != NULL)
			append_json_member(line, "domain", domain->value, field_length(domain));
		else
			append_json_member(line, "domain", program, strlen(program));
		if (message != NULL)
			append_json_member(line, "message", message->value, field_length(message));
		else
			append_json_member(line, "message", "", 0);
	} else {
		/* the time of day is enough on a terminal; the date is in JSON */
		g_string_append_printf(line, "%.12s %s ", ts + 11, level_name(level));
		if (domain != NULL)
			append_escaped(line, domain->value, field_length(domain), FALSE);
		else
			g_string_append(line, program);
		g_string_append(line, ": ");
		if (message != NULL)
			append_escaped(line, message->value, field_length(message), FALSE);
	}

	for (gsize i = 0; i < n_fields; i++) {
		const GLogField *f = &fields[i];

		if (f->key == NULL || !g_str_has_prefix(f->key, "CODECHAT_"))
			continue;
		if (format == CODECHAT_LOG_FORMAT_JSON) {
			append_json_member(line, f->key, f->value, field_length(f));
		} else {
			g_string_append_c(line, ' ');
			append_escaped(line, f->key, strlen(f->key), FALSE);
			g_string_append_c(line, '=');
			append_text_value(line, f->value, field_length(f));
		}
	}
	if (format == CODECHAT_LOG_FORMAT_JSON)
		g_string_append_c(line, '}');
	return g_string_free(line, FALSE);
}

/* whether G_MESSAGES_DEBUG names @domain, or all */
static gboolean
env_wants_domain(const gchar *domain)
{
	const gchar *env = g_getenv("G_MESSAGES_DEBUG");
	g_auto(GStrv) domains = NULL;

	if (env == NULL)
		return FALSE;
	if (g_str_equal(env, "all"))
		return TRUE;
	if (domain == NULL)
		return FALSE;
	domains = g_strsplit_set(env, " ,", -1);
	return g_strv_contains((const gchar *const *)domains, domain);
}

/*
 * Debug and info records, as GLib users expect: dropped, unless
 * G_MESSAGES_DEBUG names their domain (or says all), or debug output is
 * enabled (-v, g_log_set_debug_enabled()).  -v means codechat's own
 * records: other libraries' (libsoup's frame-by-frame chatter) are shown
 * only to those who ask G_MESSAGES_DEBUG for them.
 */
static gboolean
would_drop(GLogLevelFlags level, const gchar *domain)
{
	if (!(level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)))
		return FALSE;
	if (env_wants_domain(domain))
		return FALSE;
	if (!g_log_get_debug_enabled())
		return TRUE;
	return domain == NULL || !g_str_has_prefix(domain, "codechat");
}

static gboolean
is_old_api(const GLogField *fields, gsize n_fields)
{
	for (gsize i = 0; i < n_fields; i++) {
		if (field_is(&fields[i], "GLIB_OLD_LOG_API"))
			return TRUE;
	}
	return FALSE;
}

static GLogWriterOutput
writer_cb(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
	g_autofree gchar *line = NULL;
	g_autofree gchar *domain = NULL;
	CodechatLogFormat format = log_format;

	for (gsize i = 0; i < n_fields; i++) {
		if (field_is(&fields[i], "GLIB_DOMAIN") && fields[i].value != NULL) {
			domain = g_strndup(fields[i].value, field_length(&fields[i]));
			break;
		}
	}
	if (would_drop(level, domain))
		return G_LOG_WRITER_HANDLED;

	/* with no journal to take it, the record goes to stderr as text */
	if (format != CODECHAT_LOG_FORMAT_JOURNAL ||
	    g_log_writer_journald(level, fields, n_fields, user_data) != G_LOG_WRITER_HANDLED) {
		if (format != CODECHAT_LOG_FORMAT_JSON)
			format = CODECHAT_LOG_FORMAT_TEXT;
		line = codechat_log_format_record(format, level, fields, n_fields);
		fprintf(stderr, "%s\n", line);
		fflush(stderr);
	}

	/* as GLib's own writer does; g_logv() (GLIB_OLD_LOG_API) decides
	 * for the records that come through it */
	if ((level & log_fatal_mask & (G_LOG_LEVEL_WARNING | G_LOG_LEVEL_CRITICAL)) &&
	    !is_old_api(fields, n_fields))
		abort();
	return G_LOG_WRITER_HANDLED;
}

/**
 * codechat_log_init:
 * @program: the name for records without a domain
 * @format: the program's --log-format, or %CODECHAT_LOG_FORMAT_AUTO when
 *   it has none
 *
 * Installs the structured log writer of every codechat program, once per
 * process.  Without a format from the program, `CODECHAT_LOG_FORMAT`
 * (text, json, journal or auto) says; auto means the journal when stderr
 * is connected to it, else text.  A value of `CODECHAT_LOG_FORMAT` that
 * is none of those is ignored (auto), and said so in a message.
 */
void
codechat_log_init(const gchar *program, CodechatLogFormat format)
{
	const gchar *env = g_getenv("CODECHAT_LOG_FORMAT");
	gboolean bad_env = FALSE;

	g_free(log_program);
	log_program = g_strdup(program);
	if (format == CODECHAT_LOG_FORMAT_AUTO && env != NULL && env[0] != '\0')
		bad_env = !codechat_log_format_from_string(env, &format);
	if (format == CODECHAT_LOG_FORMAT_AUTO)
		format = g_log_writer_is_journald(fileno(stderr)) ? CODECHAT_LOG_FORMAT_JOURNAL
								  : CODECHAT_LOG_FORMAT_TEXT;
	log_format = format;
	/* there is no getter */
	log_fatal_mask = g_log_set_always_fatal(G_LOG_FATAL_MASK);
	g_log_set_always_fatal(log_fatal_mask);
	g_log_set_writer_func(writer_cb, NULL, NULL);
	if (bad_env)
		g_message("CODECHAT_LOG_FORMAT=%s is not text, json, journal or auto: ignored",
			  env);
}

/**
 * codechat_log_get_format:
 *
 * Returns: the format that codechat_log_init() settled on: never
 *   %CODECHAT_LOG_FORMAT_AUTO
 */
CodechatLogFormat
codechat_log_get_format(void)
{
	return log_format;
}

/* syslog(3) priorities, as g_log_structured() gives them */
static const gchar *
priority(GLogLevelFlags level)
{
	if (level & G_LOG_LEVEL_ERROR)
		return "3";
	if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_WARNING))
		return "4";
	if (level & G_LOG_LEVEL_MESSAGE)
		return "5";
	if (level & G_LOG_LEVEL_INFO)
		return "6";
	return "7";
}

/**
 * codechat_log_structured:
 * @fields: (nullable): the CODECHAT_* fields of the record
 *
 * Logs like g_log_structured(), with the fields of @fields that are set.
 * Use it through codechat_debug(), codechat_info() and friends.
 */
void
codechat_log_structured(const gchar *log_domain,
			GLogLevelFlags level,
			const gchar *file,
			const gchar *line,
			const gchar *func,
			const CodechatLogFields *fields,
			const gchar *format,
			...)
{
	g_autofree gchar *message = NULL;
	gchar msgid[G_ASCII_DTOSTR_BUF_SIZE];
	GLogField all[10];
	gsize n = 0;
	va_list args;

	/* skip the formatting of what nobody will see */
	if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) &&
	    g_log_writer_default_would_drop(level, log_domain))
		return;

	va_start(args, format);
	message = g_strdup_vprintf(format, args);
	va_end(args);

	all[n++] = (GLogField){"MESSAGE", message, -1};
	all[n++] = (GLogField){"PRIORITY", priority(level), -1};
	if (log_domain != NULL)
		all[n++] = (GLogField){"GLIB_DOMAIN", log_domain, -1};
	all[n++] = (GLogField){"CODE_FILE", file, -1};
	all[n++] = (GLogField){"CODE_LINE", line, -1};
	all[n++] = (GLogField){"CODE_FUNC", func, -1};
	if (fields != NULL && fields->room != NULL)
		all[n++] = (GLogField){"CODECHAT_ROOM", fields->room, -1};
	if (fields != NULL && fields->nick != NULL)
		all[n++] = (GLogField){"CODECHAT_NICK", fields->nick, -1};
	if (fields != NULL && fields->peer != NULL)
		all[n++] = (GLogField){"CODECHAT_PEER", fields->peer, -1};
	if (fields != NULL && fields->msgid != 0) {
		g_snprintf(msgid, sizeof(msgid), "%" G_GINT64_FORMAT, fields->msgid);
		all[n++] = (GLogField){"CODECHAT_MSGID", msgid, -1};
	}
	g_assert(n <= G_N_ELEMENTS(all));
	g_log_structured_array(level, all, n);
}
