// SettingsDialog: model folder, CLIP folder, device, dtype, quantization and generation settings,
// remembered with QSettings. It checks that a folder looks like a GLaMM release and says what is
// missing.
#pragma once

#include "ui/studio_types.h"

#include <QDialog>

class QComboBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QSpinBox;

class SettingsDialog : public QDialog {
    Q_OBJECT

public:
    explicit SettingsDialog(QWidget* parent = nullptr);

    void setSettings(const ModelSettings& settings);
    ModelSettings settings() const;

    // The settings remembered by QSettings (defaults when none).
    static ModelSettings load();
    static void save(const ModelSettings& settings);
    // Empty when `dir` looks like a GLaMM release; else what is missing, for the user.
    static QString checkModelFolder(const QString& dir);
    // The folder a model setting means: the bundled GLaMM-Shapes model when empty.
    static QString resolvedModelDir(const QString& dir);

private slots:
    void browseModel();
    void browseVisionTower();
    void updateCheck();

private:
    QLineEdit* modelDir_         = nullptr;
    QLineEdit* visionTowerDir_   = nullptr;
    QComboBox* device_           = nullptr;
    QComboBox* dtype_            = nullptr;
    QComboBox* quantize_         = nullptr;
    QSpinBox* maxNewTokens_      = nullptr;
    QDoubleSpinBox* temperature_ = nullptr;
    QDoubleSpinBox* topP_        = nullptr;
    QLabel* check_               = nullptr;
};
