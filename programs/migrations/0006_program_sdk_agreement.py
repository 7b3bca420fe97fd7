from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("programs", "0005_program_output_constraint"),
    ]

    operations = [
        migrations.AddField(
            model_name="program",
            name="sdk_agreement",
            field=models.FloatField(blank=True, null=True),
        ),
    ]
