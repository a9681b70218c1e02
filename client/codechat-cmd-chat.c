/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

void
codechat_cmd_chat(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;

	if (!codechat_application_parse_options(app, NULL, FALSE, &args))
		return;
	codechat_application_finish(app,
				    g_error_new_literal(CODECHAT_ERROR,
							CODECHAT_ERROR_INVALID_ARGUMENT,
							_("chat is not written yet")));
}
