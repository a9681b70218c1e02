/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* codechat rooms: one line, or one JSON object, a room */

static void
print_rooms(CodechatApplication *app, CodechatConnection *conn, JsonArray *rooms)
{
	CodechatOutput *output = codechat_application_get_output(app);

	for (guint i = 0; i < json_array_get_length(rooms); i++) {
		JsonNode *node = json_array_get_element(rooms, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			codechat_output_room(output, json_node_get_object(node));
	}
}

void
codechat_cmd_rooms(CodechatApplication *app)
{
	codechat_cmd_run_rooms(app, print_rooms);
}
